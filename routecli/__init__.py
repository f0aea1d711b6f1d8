"""routecli: route each prompt to the cheapest model that answers it well."""

__version__ = "0.1.0"
