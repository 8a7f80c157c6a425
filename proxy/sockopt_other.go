//go:build !linux

package proxy

import "net"

// listenConfig sets keep-alive on every accepted connection.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAliveConfig: keepAlive}
}
