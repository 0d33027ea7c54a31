"""Data shipped with the package: a Fashion-MNIST subset (MIT licence) for offline demos."""
