"""What the agent thinks: reflection, personality, journal self-reply and chat."""
