"""Provider adapters: email, WhatsApp/SMS/voice, AI, file storage. They import nothing of ours but `enums` and
`settings`, take plain values and return their own dataclasses; they never touch the database, events or resolvers."""
