"""Allow `python -m bot`."""

from bot.main import main

main()
