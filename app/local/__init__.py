"""What a developer's machine runs for cityrisk: the project-local PostGIS cluster and Mosquitto
broker (``cityrisk db up`` / ``cityrisk mq up``) and the apt installs behind them."""
