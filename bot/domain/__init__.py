"""The pure core: RUTs, the schedule's arithmetic, the clock and the validated settings."""
