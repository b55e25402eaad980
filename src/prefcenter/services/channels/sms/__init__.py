"""SMS: keywords, inbound texts, sending numbers, consent questions by text."""
