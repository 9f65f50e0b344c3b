"""Where miziha works around Paddle: every workaround, each naming the Paddle fact it works
around (:mod:`.workarounds`, whose docstring is the index), and the CPU policy that decides
when they apply (:mod:`.cpu`)."""
