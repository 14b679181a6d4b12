package projectiontest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/projectiontest"
)

func memoryControls(*testing.T) projection.Controls { return projection.NewMemory() }

// TestControlCasesPassOnMemory checks the harness: every case passes
// against the reference store when run through the recorder.
func TestControlCasesPassOnMemory(t *testing.T) {
	conformancetest.CheckPass(t, projectiontest.ControlCases(), memoryControls)
}

func TestControlCasesAreNamedAndStateRules(t *testing.T) {
	cases := projectiontest.ControlCases()
	conformancetest.CheckCases(t, cases)
	names := map[string]bool{}
	for _, c := range projectiontest.Cases() {
		names[c.Name] = true
	}
	for _, c := range projectiontest.DeadLetterCases() {
		names[c.Name] = true
	}
	for _, c := range cases {
		if names[c.Name] {
			t.Errorf("control case %s has the name of another suite's case", c.Name)
		}
	}
}

// TestControlSuiteDetectsBrokenStores runs cases against stores that each
// break one rule and checks that the cases that should catch it fail,
// saying which rule broke.
func TestControlSuiteDetectsBrokenStores(t *testing.T) {
	wrap := func(f func(*projection.Memory) projection.Controls) func(*testing.T) projection.Controls {
		return func(*testing.T) projection.Controls { return f(projection.NewMemory()) }
	}
	b := conformancetest.Break[projection.Controls]
	conformancetest.CheckCaught(t, projectiontest.ControlCases(), []conformancetest.Broken[projection.Controls]{
		b("IgnoresVersion", wrap(func(m *projection.Memory) projection.Controls { return blindSave{m} }),
			"ControlConditional", "ControlConcurrentUpdates"),
		b("LosesRetries", wrap(func(m *projection.Memory) projection.Controls { return loseRetries{m} }),
			"ControlSaveLoad"),
		b("FoldsCase", wrap(func(m *projection.Memory) projection.Controls { return foldCase{m} }),
			"ControlNamesApart"),
		b("ResetClearsControl", wrap(func(m *projection.Memory) projection.Controls { return resetClears{m} }),
			"ControlApartFromOffset"),
		b("IgnoresCanceledContext", wrap(func(m *projection.Memory) projection.Controls { return deafControls{m} }),
			"ControlCanceledContext"),
	})
}

// blindSave saves whatever the version.
type blindSave struct{ *projection.Memory }

func (s blindSave) SaveControl(ctx context.Context, name string, c projection.Control, _ uint64) (uint64, error) {
	for {
		_, v, err := s.Memory.LoadControl(ctx, name)
		if err != nil {
			return 0, err
		}
		nv, err := s.Memory.SaveControl(ctx, name, c, v)
		if !errors.Is(err, projection.ErrControlChanged) {
			return nv, err
		}
	}
}

// loseRetries saves records without their retry requests.
type loseRetries struct{ *projection.Memory }

func (s loseRetries) SaveControl(ctx context.Context, name string, c projection.Control, v uint64) (uint64, error) {
	c.Retries = nil
	return s.Memory.SaveControl(ctx, name, c, v)
}

// foldCase keys records by the lower-cased name.
type foldCase struct{ *projection.Memory }

func (s foldCase) LoadControl(ctx context.Context, name string) (projection.Control, uint64, error) {
	return s.Memory.LoadControl(ctx, strings.ToLower(name))
}

func (s foldCase) SaveControl(ctx context.Context, name string, c projection.Control, v uint64) (uint64, error) {
	return s.Memory.SaveControl(ctx, strings.ToLower(name), c, v)
}

// resetClears drops the control record with the offset.
type resetClears struct{ *projection.Memory }

func (s resetClears) Reset(ctx context.Context, name string, clear func(context.Context) error) error {
	_, v, err := s.LoadControl(ctx, name)
	if err != nil {
		return err
	}
	if _, err := s.SaveControl(ctx, name, projection.Control{}, v); err != nil {
		return err
	}
	return s.Memory.Reset(ctx, name, clear)
}

// deafControls ignores canceled contexts.
type deafControls struct{ *projection.Memory }

func (s deafControls) LoadControl(ctx context.Context, name string) (projection.Control, uint64, error) {
	return s.Memory.LoadControl(context.WithoutCancel(ctx), name)
}

func (s deafControls) SaveControl(ctx context.Context, name string, c projection.Control, v uint64) (uint64, error) {
	return s.Memory.SaveControl(context.WithoutCancel(ctx), name, c, v)
}
