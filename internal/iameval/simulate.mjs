// simulate.mjs runs a batch of IAM requests through @cloud-copilot/iam-simulate.
//
// It is embedded in the Go package iameval and run as
//   node --input-type=module -e <this file>
// with the working directory set to the folder that holds node_modules, so the
// bare import below resolves to .tools/node_modules. iam-simulate is AGPL: it
// is a test-time oracle only and is never shipped.
//
// stdin:  JSON array of {name, principal, action, resource, accountId,
//         context: {key: string | string[]}, identityPolicies: [{name, document}],
//         resourcePolicy?: {name, document},
//         serviceControlPolicies?: [{orgIdentifier, policies: [{name, document}]}]}
//         (SCP levels root first, account last, as iam-simulate wants them)
// stdout: JSON array, same order, of {name, decision, errors, ignoredContextKeys,
//         denyingStatements, scpDenyingStatements, explain}
// Anything that stops the batch itself goes to stderr with a non-zero exit code.
import { findContextKeys, runSimulation } from '@cloud-copilot/iam-simulate'
import { lintPolicy, loadPolicy } from '@cloud-copilot/iam-policy'

async function readStdin() {
  const chunks = []
  for await (const chunk of process.stdin) {
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

// statementIds lists the Sid (or positional identifier) of every statement
// analysis, sorted and deduplicated.
function statementIds(statements) {
  return [...new Set(statements.map((s) => s.statement?.Sid ?? s.explain?.identifier ?? '?'))].sort()
}

// denyingStatements lists every identity-policy Deny statement that matched,
// across all simulated resources.
function denyingStatements(analyses) {
  return statementIds(analyses.flatMap((a) => a?.identityAnalysis?.denyStatements ?? []))
}

// scpDenyingStatements lists every SCP Deny statement that matched, at any
// level of the organisation, across all simulated resources.
function scpDenyingStatements(analyses) {
  return statementIds(
    analyses.flatMap((a) => (a?.scpAnalysis?.ouAnalysis ?? []).flatMap((ou) => ou.denyStatements ?? []))
  )
}

// lintPolicies reports what runSimulation's own validation lets through but
// would silently turn a condition into "no match" (and so a Deny into
// nothing): lint findings, context keys IAM does not know, and Null/Bool
// conditions whose value is not "true" or "false".
async function lintPolicies(policies) {
  const problems = []
  for (const p of policies) {
    const lint = lintPolicy(p.document)
    for (const e of lint) {
      problems.push(`${p.name}: ${e.path}: ${e.message}`)
    }
    if (lint.length > 0) {
      continue
    }
    const { invalidKeys } = await findContextKeys([loadPolicy(p.document, { name: p.name })])
    for (const k of invalidKeys) {
      problems.push(`${p.name}: unknown condition key ${k}`)
    }
    const statements = [p.document.Statement].flat()
    statements.forEach((st, i) => {
      for (const [op, kv] of Object.entries(st?.Condition ?? {})) {
        const base = op.replace(/^For(Any|All)Values:/, '').replace(/IfExists$/, '')
        if (base !== 'Null' && base !== 'Bool') {
          continue
        }
        for (const [key, value] of Object.entries(kv ?? {})) {
          for (const v of [value].flat()) {
            if (String(v) !== 'true' && String(v) !== 'false') {
              problems.push(`${p.name}: Statement[${i}]: ${op} ${key}: value ${JSON.stringify(v)} is not true or false`)
            }
          }
        }
      }
    })
  }
  return problems
}

// evaluationProblems walks an analysis and reports every condition the
// simulator could not evaluate: unknown operators and unusable values
// (e.g. an invalid CIDR). A policy variable whose key is absent from the
// request is NOT reported: the lock guards those with Null checks, and the
// simulator's "never matches" is then irrelevant.
function evaluationProblems(node, problems = []) {
  if (Array.isArray(node)) {
    node.forEach((n) => evaluationProblems(n, problems))
  } else if (node && typeof node === 'object') {
    if (node.missingOperator === true) {
      problems.push(`unknown condition operator ${node.operator}`)
    }
    for (const e of Array.isArray(node.errors) ? node.errors : []) {
      // "X does not match" explains why a statement's Resource did not match the request's
      // resource (another service, product, account): an answer, not a problem.
      if (typeof e === 'string' && !/not found in request context|does not match$/.test(e)) {
        problems.push(`${node.value ?? ''}: ${e}`)
      }
    }
    Object.values(node).forEach((n) => evaluationProblems(n, problems))
  }
  return problems
}

async function simulateOne(req) {
  const simulation = {
    request: {
      principal: req.principal,
      action: req.action,
      resource: { resource: req.resource, accountId: req.accountId },
      contextVariables: req.context ?? {}
    },
    identityPolicies: (req.identityPolicies ?? []).map((p) => ({ name: p.name, policy: p.document })),
    serviceControlPolicies: (req.serviceControlPolicies ?? []).map((level) => ({
      orgIdentifier: level.orgIdentifier,
      policies: level.policies.map((p) => ({ name: p.name, policy: p.document }))
    })),
    resourceControlPolicies: []
  }
  const linted = simulation.identityPolicies.map((p) => ({ name: p.name, document: p.policy }))
  for (const level of req.serviceControlPolicies ?? []) {
    for (const p of level.policies) {
      linted.push({ name: `${level.orgIdentifier}/${p.name}`, document: p.document })
    }
  }
  if (req.resourcePolicy) {
    simulation.resourcePolicy = req.resourcePolicy.document
    linted.push({ name: req.resourcePolicy.name, document: req.resourcePolicy.document })
  }
  let response
  try {
    const lint = await lintPolicies(linted)
    if (lint.length > 0) {
      return { name: req.name, errors: { message: 'policy lint', problems: lint } }
    }
    response = await runSimulation(simulation, { simulationMode: 'Strict' })
  } catch (err) {
    return { name: req.name, errors: { message: 'simulator threw: ' + (err?.stack ?? String(err)) } }
  }
  if (response.resultType === 'error') {
    return { name: req.name, errors: response.errors }
  }
  const results = response.resultType === 'single' ? [response.result] : response.results
  const ignored = [...new Set(results.flatMap((r) => r.ignoredContextKeys ?? []))].sort()
  const problems = [...new Set(evaluationProblems(results.map((r) => r.analysis)))]
  if (problems.length > 0) {
    return { name: req.name, errors: { message: 'condition evaluation', problems } }
  }
  return {
    name: req.name,
    decision: response.overallResult,
    ignoredContextKeys: ignored,
    denyingStatements: denyingStatements(results.map((r) => r.analysis)),
    scpDenyingStatements: scpDenyingStatements(results.map((r) => r.analysis)),
    explain: response.resultType === 'single' ? response.result : response.results
  }
}

try {
  const requests = JSON.parse(await readStdin())
  if (!Array.isArray(requests)) {
    throw new Error('stdin must be a JSON array of requests')
  }
  const out = []
  for (const req of requests) {
    out.push(await simulateOne(req))
  }
  process.stdout.write(JSON.stringify(out))
} catch (err) {
  process.stderr.write('simulate.mjs: ' + (err?.stack ?? String(err)) + '\n')
  process.exitCode = 1
}
