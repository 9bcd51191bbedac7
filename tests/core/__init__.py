"""Fast tests of psp_assets/core, one folder per package, with real PHP and local stand-ins."""
