"""Background work: the Dramatiq broker (`broker`), the actors (`actors`), the work committed events call for
(`consequences`), the leader-elected scheduler (`scheduler`) and the IMAP IDLE watchers (`idle`)."""
