"""The vocabulary of cityrisk, as data: asset plates and kinds, sensor indicators, the alarm
levels, states and transitions, the four-colour risk classes. One place for each word; every
domain, layer and page reads it from here."""
