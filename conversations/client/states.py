"""The states of the client's conversation, as stored in the database.

What each state accepts is the table in conversations.client.router.
"""

# Asked at /start: is the client at the computer, or on the phone?
ASK_DEVICE = "ask_device"
ASK_RUT = "ask_rut"
CONFIRM_RUT = "confirm_rut"
CONFIRM_REPEAT = "confirm_repeat"
GUIDE = "guide"
