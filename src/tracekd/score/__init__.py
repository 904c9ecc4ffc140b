"""Scoring: answers (one scorer per dataset), trace steps, and their association."""
