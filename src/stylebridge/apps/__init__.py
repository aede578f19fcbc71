"""Applications on top of the library: the command line and the demo. They parse and call; nothing below imports
them."""
