"""Quality metrics: Fréchet distances in Inception or domain-network feature space."""

from stylebridge.metrics.frechet import (
    DomainFeatures,
    FeatureStats,
    FrechetResult,
    fd_of_generator,
    feature_extractor,
    frechet_distance,
    reference_distance,
)

__all__ = [
    "DomainFeatures",
    "FeatureStats",
    "FrechetResult",
    "fd_of_generator",
    "feature_extractor",
    "frechet_distance",
    "reference_distance",
]
