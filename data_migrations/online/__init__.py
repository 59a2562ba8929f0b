"""After go-live: what makes a schema change on the live database safe for the app."""
