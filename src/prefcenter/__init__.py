"""prefcenter: may we contact this person, about this, on this channel, now, and why (not)?"""

__version__ = "0.1.0"
