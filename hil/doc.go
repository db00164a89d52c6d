// Package hil is hardware in the loop: ARM boards (or emulated ones) as
// the edge nodes of a run. An Inventory lists the boards (name,
// architecture, SSH address, user, key, known_hosts, data directory);
// Deploy copies the sedna binary of each board's architecture over SSH
// (SFTP, checked by its SHA-256), installs its configuration and starts its
// edge agent, under systemd where the board has it and as a supervised
// process where it does not; Clean stops and removes it.
//
// Run runs a simulator scenario with the boards as its nodes: the devices
// publish on each board's broker, each board's cloud link passes through a
// fault proxy on this host, kills and restarts act on the agents over SSH,
// and each board is sampled (RSS, CPU, store) while it runs and times the
// built-in plugins after. The Report puts the boards side by side as JSON,
// Markdown and a chart of RSS and backlog over time.
//
// SSH always checks host keys against the board's known_hosts: an unknown
// key is refused unless the caller trusts new keys explicitly (it is then
// added), and a changed key is refused, said in one line.
package hil
