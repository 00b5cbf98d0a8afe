"""Evolution: operators that write child programs, population bookkeeping and selection."""
