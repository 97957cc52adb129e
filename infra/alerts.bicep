// Alerts an operator acts on (docs/operations.md says what to do for each). Log alerts over Application
// Insights: queue-level metrics on a storage account are account-wide only (no per-queue dimension), so a
// poison queue cannot be told apart from the busy main queues with a metric alert.
param location string
param tags object
param applicationInsightsId string
@description('Where alert e-mails go; empty: alerts only show in the portal.')
param alertEmail string = ''
param namePrefix string

var hasEmail = !empty(alertEmail)
var actions = hasEmail ? {
  actionGroups: [
    actionGroup.id
  ]
} : {}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (hasEmail) {
  name: '${namePrefix}-operators'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'smm-ops'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Fires as soon as the Functions host moves a message to any <queue>-poison queue (after 5 failed
// attempts, host.json maxDequeueCount). Not auto-resolved: it stays open until someone has looked at the
// poison queue, replayed or removed the message, and closed the alert.
resource poisonMoved 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-poison-queue-message'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'A queue message was moved to a -poison queue'
    description: 'A Stripe event, an e-mail or a chunk of a bulk license assignment failed 5 times and now waits in stripe-events-poison, outbound-email-poison or assignment-jobs-poison. See docs/operations.md, "Poison queues".'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: '''
traces
| where message contains "Moving message to queue" and message contains "-poison"
| extend queue = extract("queue '([^']+)'", 1, message)
| summarize moved = count() by queue
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'moved'
          dimensions: [
            {
              name: 'queue'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: actions
  }
}

// Fires while a poison queue still holds messages, from the depth the `poison_queue_depth` timer function
// logs every 15 minutes ("poison_queue_depth queue=<name> depth=<n>"). Resolves itself once the queue is
// empty (handlers/operations.py). `arg_max(timestamp, depth)` keeps the latest line's `depth` (a long) under
// its own name; `depth = arg_max(...)` would name the timestamp `depth` and measure a datetime, which Azure
// Monitor refuses (tests/infra/test_alert_queries.py types every query with the Kusto language service).
resource poisonNotEmpty 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-poison-queue-not-empty'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'A -poison queue is not empty'
    description: 'Messages are waiting in a poison queue. See docs/operations.md, "Poison queues".'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: '''
traces
| where message startswith "poison_queue_depth "
| parse message with * "queue=" queue " depth=" depth:long
| summarize arg_max(timestamp, depth) by queue
| project queue, depth
'''
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'depth'
          dimensions: [
            {
              name: 'queue'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: actions
  }
}

// Fires when the webhook endpoint or the function that applies Stripe events fails 3 or more times in 15
// minutes. For the HTTP endpoint any 4xx/5xx counts: after a wrongly set webhook secret every Stripe
// delivery gets 400 while the function itself "succeeds".
resource webhookFailing 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-stripe-webhook-failing'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Stripe webhook or event processing failing repeatedly'
    description: 'stripe_webhook answers errors or apply_stripe_event fails. See docs/operations.md, "Webhooks fail".'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: '''
requests
| where operation_Name in ("stripe_webhook", "apply_stripe_event")
| where success == false or (operation_Name == "stripe_webhook" and toint(resultCode) >= 400)
| summarize failures = count() by operation_Name
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'failures'
          dimensions: [
            {
              name: 'operation_Name'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThanOrEqual'
          threshold: 3
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: actions
  }
}
