//! Watches the config directory and reports each new version of the file.
