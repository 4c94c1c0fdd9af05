"""The messaging channels: WhatsApp, SMS and voice through Exotel or Twilio."""
