package e2e_test

import "github.com/musterhq/muster/internal/agent"

type targetConfig = agent.Config
