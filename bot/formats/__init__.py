"""Files the firm gets and sends: spreadsheets, the client list it uploads, the progress chart."""
