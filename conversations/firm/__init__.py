"""The firm's side of the bot: its commands, listings and replies to clients."""
