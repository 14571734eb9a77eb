"""The embeddable support widget: keys, allowed origins, visitor sessions, limits, tickets and the loader."""
