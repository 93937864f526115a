package e2e_test

import "github.com/musterhq/muster/internal/target"

type targetConfig = target.Config
