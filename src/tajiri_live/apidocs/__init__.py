"""The API's own documentation pages, served with no network beyond this service."""
