// The Function App on a Flex Consumption plan (Linux, Python 3.11), with every app setting it reads.
// Storage is reached by the user-assigned identity (no connection string); secrets are Key Vault
// references resolved by that same identity. infra/SETTINGS.md lists each setting and where it comes from.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param deploymentContainerUrl string
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param applicationInsightsConnectionString string
param keyVaultUri string
param acsEndpoint string
param mailSender string
@description('Public https URL without a path; empty: the app\'s default azurewebsites.net host name.')
param publicBaseUrl string = ''
@description('Operator settings from main.bicep parameters (name -> value); empty values fall back to code defaults.')
param operatorSettings object
param maximumInstanceCount int = 100
param instanceMemoryMB int = 2048

var effectivePublicBaseUrl = empty(publicBaseUrl) ? 'https://${name}.azurewebsites.net' : publicBaseUrl

// Settings the template derives from the resources it creates. Secrets are versionless Key Vault
// references (trailing slash): a new secret version is picked up without a template change.
var platformSettings = {
  APP_ENVIRONMENT: 'production'
  PUBLIC_BASE_URL: effectivePublicBaseUrl
  // Host and app storage by managed identity; shared keys are disabled on the account.
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  // DefaultAzureCredential picks the user-assigned identity for any client not given one explicitly.
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  // Application Insights has local auth disabled: the host sends telemetry with the identity's token.
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  ACS_ENDPOINT: acsEndpoint
  MAIL_SENDER: mailSender
  SESSION_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/session-secret/)'
  ENTRA_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/entra-client-secret/)'
  STRIPE_SECRET_KEY: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/stripe-secret-key/)'
  STRIPE_WEBHOOK_SECRETS: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/stripe-webhook-secrets/)'
  LEASE_SIGNING_KEYS: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/lease-signing-keys/)'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy exists for Flex Consumption only in some regions; not forced so the template deploys in any Flex region.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: the add-in and browsers do not present client certificates; callers authenticate with Entra tokens, sessions or the Stripe signature.
  // checkov:skip=CKV_AZURE_222: public network access is required: Stripe, the add-in and browsers call the app from the internet.
  // checkov:skip=CKV_AZURE_212: Flex Consumption adds instances on demand; "always ready" instances are a cost choice (docs/operations.md), not needed for failover.
  // checkov:skip=CKV_AZURE_213: the app exposes /api/health itself; Flex Consumption replaces unhealthy instances itself and has no health-check probe setting.
  // checkov:skip=CKV_AZURE_78: FTP is off through basicPublishingCredentialsPolicies `ftp` (allow: false, below); the check only reads siteConfig.ftpsState, which Flex Consumption does not support (ARM error 51021).
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    // Key Vault references are resolved with the user-assigned identity (there is no system identity).
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // No `ftpsState`: Flex Consumption does not support FTPS and rejects the property in some regions
      // (ARM error 51021). FTP is off through the basicPublishingCredentialsPolicies below.
      http20Enabled: true
      // No platform CORS: the app answers CORS for ADDIN_ORIGINS itself, and platform CORS would override it.
      // The whole app-settings set is replaced on every provision: a setting changed by hand in the portal
      // is lost, so change settings through parameters (infra/SETTINGS.md).
      appSettings: [for setting in items(union(operatorSettings, platformSettings)): {
        name: setting.key
        value: setting.value
      }]
    }
  }
}

// Child resources are top-level declarations with `parent:` rather than nested blocks: pycep-parser (and
// so checkov and tests/infra) keeps only the last nested child of a resource.

// No FTP and no basic-auth publishing: azd deploys with Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
output publicBaseUrl string = effectivePublicBaseUrl
