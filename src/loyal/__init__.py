"""Loyal: the customer-retention CRM."""

__version__ = "0.1.0"
