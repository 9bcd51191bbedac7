"""The platform templates as data: template.yaml and its rules (spec), the shared translations and their
catalogs (i18n), and the content-keyed cache of loaded templates (cache)."""
