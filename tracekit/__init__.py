"""tracekit: post-processing toolkit for AI model traces."""

__version__ = "0.1.0"
