-- bench.plan: plans, from the YAML file to the list of cells.
--
-- A plan is a YAML file (documented in plans/README.md). plan.load reads it
-- with bench.yaml's source positions, applies --set overrides, validates the
-- whole document (collecting every error, each "<file>:<line>:<col>:
-- <key.path>: <what was expected>") and expands the matrix into cells.
-- Nothing here starts a process or touches the machine.
--
-- The package (docs/plans.md draws it):
--   load.lua      reading the file, --set overrides, the size bound
--   validate.lua  the steps of validation, in order
--   schema.lua    what a plan may hold (a tree of typed nodes)
--   check.lua     the validator: one checker per node kind, error texts
--   cross.lua     checks across fields (names, the phase script, files)
--   matrix.lua    matrix expansion into cells, --only patterns
--   resolve.lua   a cell's server and model specs
--   estimate.lua  time estimates and the text of --check
--   paths.lua     key paths and their positions in the file
--   suggest.lua   "did you mean"
-- This file is the module's face: what other code may use.
local estimate = require("bench.plan.estimate")
local load = require("bench.plan.load")
local matrix = require("bench.plan.matrix")
local paths = require("bench.plan.paths")
local schema = require("bench.plan.schema")
local units = require("bench.units")
local util = require("bench.util")

local plan = {}

-- plan.load(path, {sets = {"k=v"...}, only, dry_run, real}) -> plan or nil, messages (a list of strings)
plan.load = load.file
-- plan.from_string(text, opts) -> plan or nil, messages, temporary file name (for tests)
plan.from_string = load.string
-- plan.validate(doc, {file, where, only, dry_run, real}) -> plan or nil, errors
plan.validate = require("bench.plan.validate")
plan.apply_set = load.apply_set
plan.expanded_size = load.expanded_size
plan.parse_key_path = load.parse_key_path

plan.schema = schema.root
plan.CELL_FIELDS = schema.CELL_FIELDS
plan.LIMITS = schema.LIMITS
plan.BACKENDS = schema.BACKENDS
plan.DIALECTS = schema.DIALECTS

plan.AXES = matrix.AXES
plan.label_of = matrix.label_of
plan.match_cell = matrix.match_cell

plan.SEED_MAX_TOKENS = estimate.SEED_MAX_TOKENS
plan.prompt_budgets = estimate.prompt_budgets
plan.cell_requests = estimate.cell_requests
plan.server_key = estimate.server_key
plan.estimate = estimate.seconds
plan.check_text = estimate.check_text

plan.describe = require("bench.plan.check").describe
plan.suggest = require("bench.plan.suggest").closest
plan.path_string = paths.string
plan.make_where = paths.make_where
plan.is_list = util.is_list
plan.is_map = util.is_map

-- the parsers of plan values (bench.units has them and the formats)
plan.duration = units.duration
plan.size = units.size

return plan
