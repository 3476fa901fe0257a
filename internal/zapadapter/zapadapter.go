// Package zapadapter makes a zap logger serve as the Temporal SDK's logger,
// so the worker and the CLI write one structured log stream.
package zapadapter

import (
	"fmt"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

// Logger adapts *zap.Logger to log.Logger and log.WithLogger.
type Logger struct{ z *zap.Logger }

var (
	_ log.Logger     = (*Logger)(nil)
	_ log.WithLogger = (*Logger)(nil)
)

// New wraps z; the SDK's key-value pairs become zap fields.
func New(z *zap.Logger) *Logger { return &Logger{z: z.WithOptions(zap.AddCallerSkip(1))} }

func (l *Logger) fields(keyvals []any) []zap.Field {
	fs := make([]zap.Field, 0, len(keyvals)/2+1)
	for i := 0; i < len(keyvals); i += 2 {
		if i+1 >= len(keyvals) {
			fs = append(fs, zap.Any("extra", keyvals[i]))
			break
		}
		k, ok := keyvals[i].(string)
		if !ok {
			k = fmt.Sprint(keyvals[i])
		}
		fs = append(fs, zap.Any(k, keyvals[i+1]))
	}
	return fs
}

func (l *Logger) Debug(msg string, keyvals ...any) { l.z.Debug(msg, l.fields(keyvals)...) }
func (l *Logger) Info(msg string, keyvals ...any)  { l.z.Info(msg, l.fields(keyvals)...) }
func (l *Logger) Warn(msg string, keyvals ...any)  { l.z.Warn(msg, l.fields(keyvals)...) }
func (l *Logger) Error(msg string, keyvals ...any) { l.z.Error(msg, l.fields(keyvals)...) }

// With returns a logger that adds keyvals to every entry.
func (l *Logger) With(keyvals ...any) log.Logger { return &Logger{z: l.z.With(l.fields(keyvals)...)} }
