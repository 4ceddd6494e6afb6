"""Which files a memory root owns and how each kind is read: discover, parse, chunk, read back."""
