"""Allow `python -m bot`."""

from bot.wiring.main import main

main()
