def double(x):
    """
    >>> double(2)
    4
    >>> double(3)
    7
    """
    return 2 * x
