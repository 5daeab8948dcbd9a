"""What training raises and warns when the numbers go wrong."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (the weights are restored before raising)."""


class DeadNetworkWarning(RuntimeWarning):
    """A hidden ReLU layer outputs zero for every training sample: nothing below it can learn."""
