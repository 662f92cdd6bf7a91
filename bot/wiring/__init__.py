"""Everything put together: settings to a running application, the command line."""
