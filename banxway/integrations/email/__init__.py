"""Email adapters: parse and compose RFC 5322 mail, IMAP and SMTP. Plain values in, our dataclasses out."""
