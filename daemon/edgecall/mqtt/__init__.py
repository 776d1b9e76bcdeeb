"""Head-office link: MQTT client, durable outbox, commands, `edgecall tail`."""
