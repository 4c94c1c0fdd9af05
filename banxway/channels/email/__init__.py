"""The email channel: parsing, fetching and sending mail."""
