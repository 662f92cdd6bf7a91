"""The states of the client's conversation, as stored in the database."""

from telegram.ext import ConversationHandler

ASK_RUT = "ask_rut"
CONFIRM_RUT = "confirm_rut"
CONFIRM_REPEAT = "confirm_repeat"
GUIDE = "guide"
END = ConversationHandler.END
