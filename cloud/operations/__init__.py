"""Operations: events and alarms, gateway health, voltage quality."""
