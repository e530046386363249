"""fastagi-router: a FastAGI smart-routing server for Asterisk."""

__version__ = "0.1.0"
