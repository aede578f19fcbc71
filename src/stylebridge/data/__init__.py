"""Data: the synthfaces domain, paired task datasets, real image folders."""
