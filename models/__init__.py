"""Tables and persistence (SQLAlchemy Core); rows become plain domain dataclasses. No business rules."""
