"""canarywatch: prove that multi-tenant camera integrations never show one tenant's frames to another."""

__all__ = ["__version__"]

__version__ = "0.1.0"
