"""The client's conversation: its states, the router over them and their handlers."""
