// SecureMailMerge licensing server: everything `azd up` provisions. Subscription scope so the resource group
// is part of the template (the shape of Azure-Samples/functions-quickstart-python-http-azd). Registry
// modules are not used: each module under infra/ is plain `resource` declarations that the offline checks
// (pycep-parser, checkov, tests/infra) can read. Parameters: infra/SETTINGS.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region of the resource group and the Function App (must offer Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the person or pipeline running azd; gets Key Vault Secrets Officer and poison-queue access.')
param principalId string = ''

@allowed(['User', 'Group', 'ServicePrincipal'])
param principalType string = 'User'

// --- operator parameters without a safe default ---------------------------------------------------
// minLength: azd passes an unset variable as '', which must stop the deployment here, not at app start.
@minLength(3)
@description('Support contact named in every e-mail and page footer (SUPPORT_EMAIL).')
param supportEmail string

@minLength(36)
@maxLength(36)
@description('Application (client) id of the Entra app registration (ENTRA_CLIENT_ID).')
param entraClientId string

@minLength(1)
@description('Comma-separated accepted token audiences: the API\'s client id and/or App ID URI (API_AUDIENCES).')
param apiAudiences string

@description('Comma-separated origins allowed to call /api/license from the add-in (ADDIN_ORIGINS).')
param addinOrigins string = ''

@description('Public https URL when a custom domain is bound; empty: https://<function app>.azurewebsites.net (PUBLIC_BASE_URL).')
param publicBaseUrl string = ''

@description('Where ACS keeps e-mail data at rest, e.g. Europe, United States, Germany.')
param emailDataLocation string = 'Europe'

@description('Custom e-mail sender domain (e.g. mail.example.com); empty: the Azure-managed domain.')
param customEmailDomain string = ''

@description('true once the custom domain is verified in the portal; switches MAIL_SENDER to it.')
param customEmailDomainVerified bool = false

@description('E-mail address that receives alerts; empty: alerts only show in the portal.')
param alertEmail string = ''

// --- optional tuning: empty means the code default in services/settings.py ------------------------
param defaultLanguage string = ''
param storageHotPathBudgetSeconds string = ''
param sessionIdleMinutes string = ''
param sessionAbsoluteHours string = ''
param entraAuthority string = ''
param entraV1IssuerTemplate string = ''
param apiScope string = ''
param allowPersonalAccounts string = ''
param tokenClockSkewSeconds string = ''
param stripeApiVersion string = ''
param stripePriceLookupKey string = ''
param stripeYearlyPriceLookupKey string = ''
param stripeAutomaticTax string = ''
param invoiceMinQuantity string = ''
param invoiceDaysUntilDue string = ''
param setupReminderMinutes string = ''
param maxQuantity string = ''
param bulkAssignThreshold string = ''
param graceDays string = ''
param invitationDays string = ''
param leaseTtlHours string = ''
param licenseRateLimitPerMinute string = ''

// --- the seller on German e-invoices (XRechnung, ZUGFeRD; infra/SETTINGS.md): empty until set, and
// e-invoices are offered once all but SELLER_PHONE are set (XRechnung also needs SELLER_PHONE) ---------
param sellerLegalName string = ''
param sellerStreet string = ''
param sellerPostalCode string = ''
param sellerCity string = ''
param sellerCountry string = ''
param sellerVatId string = ''
param sellerRegister string = ''
param sellerEmail string = ''
param sellerPhone string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package'

// Must match services/storage.py (tests/infra/test_bicep.py checks): created here so the poison queues
// exist, and can be watched, before the first failure.
var tableNames = [
  'Subscriptions'
  'UserLicenses'
  'UserSubscriptions'
  'Invitations'
  'StripeIndex'
  'StripeEvents'
  'TenantConsent'
  'Sessions'
  'SentMail'
  'TenantSubscriptions'
  'OpenJobs'
  'SubscriptionIndex'
]
var queueNames = [
  'stripe-events'
  'stripe-events-poison'
  'outbound-email'
  'outbound-email-poison'
  'assignment-jobs'
  'assignment-jobs-poison'
]

// App settings that come straight from parameters. An empty value is "not set" for the app
// (services/settings.py), so the code default applies.
var operatorSettings = {
  SUPPORT_EMAIL: supportEmail
  ENTRA_CLIENT_ID: entraClientId
  API_AUDIENCES: apiAudiences
  ADDIN_ORIGINS: addinOrigins
  DEFAULT_LANGUAGE: defaultLanguage
  STORAGE_HOT_PATH_BUDGET_SECONDS: storageHotPathBudgetSeconds
  SESSION_IDLE_MINUTES: sessionIdleMinutes
  SESSION_ABSOLUTE_HOURS: sessionAbsoluteHours
  ENTRA_AUTHORITY: entraAuthority
  ENTRA_V1_ISSUER_TEMPLATE: entraV1IssuerTemplate
  API_SCOPE: apiScope
  ALLOW_PERSONAL_ACCOUNTS: allowPersonalAccounts
  TOKEN_CLOCK_SKEW_SECONDS: tokenClockSkewSeconds
  STRIPE_API_VERSION: stripeApiVersion
  STRIPE_PRICE_LOOKUP_KEY: stripePriceLookupKey
  STRIPE_YEARLY_PRICE_LOOKUP_KEY: stripeYearlyPriceLookupKey
  STRIPE_AUTOMATIC_TAX: stripeAutomaticTax
  INVOICE_MIN_QUANTITY: invoiceMinQuantity
  INVOICE_DAYS_UNTIL_DUE: invoiceDaysUntilDue
  SETUP_REMINDER_MINUTES: setupReminderMinutes
  MAX_QUANTITY: maxQuantity
  BULK_ASSIGN_THRESHOLD: bulkAssignThreshold
  GRACE_DAYS: graceDays
  INVITATION_DAYS: invitationDays
  LEASE_TTL_HOURS: leaseTtlHours
  LICENSE_RATE_LIMIT_PER_MINUTE: licenseRateLimitPerMinute
  SELLER_LEGAL_NAME: sellerLegalName
  SELLER_STREET: sellerStreet
  SELLER_POSTAL_CODE: sellerPostalCode
  SELLER_CITY: sellerCity
  SELLER_COUNTRY: sellerCountry
  SELLER_VAT_ID: sellerVatId
  SELLER_REGISTER: sellerRegister
  SELLER_EMAIL: sellerEmail
  SELLER_PHONE: sellerPhone
}

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    tableNames: tableNames
    queueNames: queueNames
  }
}

module monitoring 'monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module keyVault 'keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
  }
}

module communication 'communication.bicep' = {
  name: 'communication'
  scope: rg
  params: {
    communicationServiceName: 'acs-${resourceToken}'
    emailServiceName: 'ecs-${resourceToken}'
    tags: tags
    dataLocation: emailDataLocation
    customDomainName: customEmailDomain
    customDomainVerified: customEmailDomainVerified
  }
}

module rbac 'rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    communicationServiceName: communication.outputs.name
    appPrincipalId: identity.outputs.principalId
    operatorPrincipalId: principalId
    operatorPrincipalType: principalType
  }
}

module functionApp 'functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  // The roles exist before the app first resolves Key Vault references and starts its queue listeners.
  dependsOn: [
    rbac
  ]
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultUri: keyVault.outputs.uri
    acsEndpoint: communication.outputs.endpoint
    mailSender: communication.outputs.senderAddress
    publicBaseUrl: publicBaseUrl
    operatorSettings: operatorSettings
  }
}

module alerts 'alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    alertEmail: alertEmail
    namePrefix: 'smm-${resourceToken}'
  }
}

// azd stores these in the environment (.azure/<env>/.env); docs/operations.md uses them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_COMMUNICATION_SERVICE_NAME string = communication.outputs.name
output SERVICE_API_BASE_URL string = functionApp.outputs.publicBaseUrl
output MAIL_SENDER string = communication.outputs.senderAddress
