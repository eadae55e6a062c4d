"""The dashboard's static files (HTML, CSS, JS modules), shipped as package data."""
