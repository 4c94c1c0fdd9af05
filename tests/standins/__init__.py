"""Stand-in servers on 127.0.0.1 that speak the providers' documented wire formats, used by the tests and the
benches alike: `providers` (Exotel, Twilio, an OpenAI-compatible API) and `mailservers` (Dovecot IMAP, aiosmtpd)."""
