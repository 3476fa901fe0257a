package worker

import (
	"github.com/rollbook/rollbook/internal/workerconfig"
	"github.com/rollbook/rollbook/runbook"
)

// The worker configuration lives in internal/workerconfig (the CLI reads it
// too, without the worker's clients); these names keep the worker's
// callers as they were.
type (
	Config              = workerconfig.Config
	ChecksConfig        = workerconfig.ChecksConfig
	SigningConfig       = workerconfig.SigningConfig
	CodecConfig         = workerconfig.CodecConfig
	DatabaseConfig      = workerconfig.DatabaseConfig
	RouterConfig        = workerconfig.RouterConfig
	ConsulConfig        = workerconfig.ConsulConfig
	AddressConfig       = workerconfig.AddressConfig
	WebhookConfig       = workerconfig.WebhookConfig
	PagingConfig        = workerconfig.PagingConfig
	MetricsConfig       = workerconfig.MetricsConfig
	LogConfig           = workerconfig.LogConfig
	ReleaseDriverConfig = workerconfig.ReleaseDriverConfig
	ReleaseWaitConfig   = workerconfig.ReleaseWaitConfig
	ExecReleaseConfig   = workerconfig.ExecReleaseConfig
	CommandConfig       = workerconfig.CommandConfig
	HTTPReleaseConfig   = workerconfig.HTTPReleaseConfig
	TargetConfig        = workerconfig.TargetConfig
)

// Configuration defaults and limits.
const (
	DefaultTaskQueue        = workerconfig.DefaultTaskQueue
	MaxReleaseReadTimeout   = workerconfig.MaxReleaseReadTimeout
	MaxReleaseDeployAndWait = workerconfig.MaxReleaseDeployAndWait
)

// LoadConfig reads and checks a worker configuration file.
func LoadConfig(path string) (*Config, error) { return workerconfig.LoadConfig(path) }

// ParseConfig checks a worker configuration read from name.
func ParseConfig(name string, data []byte) (*Config, error) {
	return workerconfig.ParseConfig(name, data)
}

// CheckNames lists the names rb uses that cfg does not allow.
func CheckNames(cfg *Config, rb *runbook.Runbook) []string { return workerconfig.CheckNames(cfg, rb) }
