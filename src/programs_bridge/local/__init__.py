"""Local stand-ins for the cloud: used by the test fixtures and by ``make demo``, never by the Lambda."""
